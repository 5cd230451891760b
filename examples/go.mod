module github.com/natter-chat/natter/examples

go 1.26.0

replace (
	github.com/natter-chat/natter/pkg => ../pkg
	github.com/natter-chat/natter/sdk/go => ../sdk/go
	github.com/natter-chat/natter/streams => ../streams
)

replace github.com/gocql/gocql => github.com/scylladb/gocql v1.19.0

require (
	github.com/nats-io/nats.go v1.55.0
	github.com/natter-chat/natter/pkg v0.0.0
	github.com/natter-chat/natter/streams v0.0.0
	go.uber.org/zap v1.28.0
)

require github.com/natter-chat/natter/sdk/go v0.0.0 // indirect

require (
	github.com/antithesishq/antithesis-sdk-go v0.8.0-default-no-op // indirect
	github.com/beorn7/perks v1.0.1 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/google/go-tpm v0.9.8 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/minio/highwayhash v1.0.4 // indirect
	github.com/munnerz/goautoneg v0.0.0-20191010083416-a7dc8b61c822 // indirect
	github.com/nats-io/jwt/v2 v2.8.2 // indirect
	github.com/nats-io/nats-server/v2 v2.15.2 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/prometheus/client_golang v1.25.0 // indirect
	github.com/prometheus/client_model v0.6.3 // indirect
	github.com/prometheus/common v0.72.0 // indirect
	github.com/prometheus/procfs v0.22.0 // indirect
	go.uber.org/goleak v1.3.0
	go.uber.org/multierr v1.10.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
	golang.org/x/time v0.16.0 // indirect
	google.golang.org/protobuf v1.36.12 // indirect
)
