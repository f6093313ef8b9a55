//! An emulated Cocos agent. INSECURE: no hardware protection.
