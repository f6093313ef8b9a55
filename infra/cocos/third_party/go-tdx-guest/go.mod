module github.com/google/go-tdx-guest

go 1.20

require (
	github.com/google/go-cmp v0.6.0
	github.com/google/go-configfs-tsm v0.3.2
	github.com/google/go-eventlog v0.0.2-0.20241213203620-f921bdc3aeb0
	github.com/google/go-sev-guest v0.8.0
	github.com/google/logger v1.1.1
	go.uber.org/multierr v1.11.0
	golang.org/x/crypto v0.17.0
	golang.org/x/sys v0.19.0
	google.golang.org/protobuf v1.34.2
)

require github.com/google/go-tpm v0.9.0 // indirect
