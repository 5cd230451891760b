module github.com/natter-chat/natter/test

go 1.26.0

replace (
	github.com/natter-chat/natter/pkg => ../pkg
	github.com/natter-chat/natter/services => ../services
	github.com/natter-chat/natter/streams => ../streams
)

replace github.com/gocql/gocql => github.com/scylladb/gocql v1.19.0

require (
	github.com/coder/websocket v1.8.15 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/nats-io/nats.go v1.55.0 // indirect
	github.com/nats-io/nkeys v0.4.16 // indirect
	github.com/nats-io/nuid v1.0.1 // indirect
	github.com/natter-chat/natter/pkg v0.0.0 // indirect
	github.com/natter-chat/natter/services v0.0.0 // indirect
	github.com/natter-chat/natter/streams v0.0.0 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/crypto v0.58.0 // indirect
	golang.org/x/sys v0.49.0 // indirect
)
