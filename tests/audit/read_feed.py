"""Reads a Prism audit feed with an SSE client of its own and parses each event with the CNCF
CloudEvents SDK, as a compliance tool would.

    PRISM_TOKEN=… python3 read_feed.py <feed URL>

Prints one line per event, `<SSE id> <CloudEvents type> <source>`, and fails on anything that is
not a CloudEvents 1.0 record in the JSON format, on an event without an id, on ids out of order.
The feed URL must carry an end (`until`), so that the stream closes.
"""

import os
import sys

import httpx
from cloudevents.core.formats.json import JSONFormat
from httpx_sse import connect_sse


def main(url):
    token = os.environ["PRISM_TOKEN"]
    reader = JSONFormat()
    last = None
    count = 0
    with httpx.Client(timeout=httpx.Timeout(30.0)) as client:
        with connect_sse(client, "GET", url, headers={"Authorization": f"Bearer {token}"}) as source:
            source.response.raise_for_status()
            for sse in source.iter_sse():
                if sse.event != "message":
                    raise SystemExit(f"not an event record: {sse.event}: {sse.data}")
                event = reader.read(None, sse.data)
                if event.get_specversion() != "1.0":
                    raise SystemExit(f"specversion {event.get_specversion()}")
                position = tuple(int(part) for part in sse.id.split("."))
                if last is not None and position <= last:
                    raise SystemExit(f"event {sse.id} after {last}")
                last = position
                count += 1
                print(sse.id, event.get_type(), event.get_source())
    if count == 0:
        raise SystemExit("the feed sent no event")


if __name__ == "__main__":
    main(sys.argv[1])
