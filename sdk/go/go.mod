module github.com/natter-chat/natter/sdk/go

go 1.26.0

require (
	github.com/coder/websocket v1.8.15
	github.com/oklog/ulid/v2 v2.1.2
)
