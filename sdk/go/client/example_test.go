package client_test

import (
	"context"
	"fmt"
	"log"

	"github.com/natter-chat/natter/sdk/go/client"
)

// A device that sends one message and prints what it receives. Run natter (make run), sign up
// and log in over the HTTP API for a token, open a conversation, then run this with them.
// test/sdk runs the same calls against a real natter.
func Example() {
	token, conversationID := "<access token>", "<conversation id>"
	c, err := client.Dial(client.Config{
		URL:      "ws://127.0.0.1:8081/v1/ws",
		Token:    token,
		DeviceID: "laptop", // stable per installation
		// Cursor: &saved, // resume where this device left off; nil starts at the head
	})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	<-c.Ready() // caught up; live from here

	ack, err := c.Send(context.Background(), conversationID, "hello") // retried until acked, one message
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("stored at seq", ack.Seq)
	for ev := range c.Events() { // every event once, in seq order, across reconnects
		fmt.Println(ev.Seq, ev.SenderID, ev.Text)
		// persist ev.Seq with what you keep: it is the cursor to resume from
	}
}
