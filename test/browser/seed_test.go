package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// apiCall sends one JSON request to the HTTP API and decodes the answer into out.
func apiCall(t *testing.T, method, u, token string, body, out any) {
	t.Helper()
	var r *bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(b)
	} else {
		r = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("%s %s: %s", method, u, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
}

// seed logs in as handle and sends texts, in order, to its only direct conversation over a
// WebSocket of its own (another device), waiting for every ack.
func seed(t *testing.T, api, handle, password string, texts []string) {
	t.Helper()
	var login struct {
		Token string `json:"token"`
	}
	apiCall(t, http.MethodPost, api+"/v1/login", "", map[string]string{"handle": handle, "password": password}, &login)
	var convs struct {
		Conversations []struct {
			ID   string `json:"id"`
			Kind string `json:"kind"`
		} `json:"conversations"`
	}
	apiCall(t, http.MethodGet, api+"/v1/conversations", login.Token, nil, &convs)
	conv := ""
	for _, c := range convs.Conversations {
		if c.Kind == "direct" {
			conv = c.ID
		}
	}
	var disc struct {
		Gateway struct {
			URL string `json:"url"`
		} `json:"gateway"`
	}
	apiCall(t, http.MethodGet, api+"/v1/discovery", "", nil, &disc)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, disc.Gateway.URL+"?device=seeder&token="+url.QueryEscape(login.Token), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	for i, text := range texts {
		frame, _ := json.Marshal(map[string]string{"type": "send", "client_msg_id": fmt.Sprintf("seed%d", i), "conversation_id": conv, "text": text})
		if err := ws.Write(ctx, websocket.MessageText, frame); err != nil {
			t.Fatal(err)
		}
	}
	for acks := 0; acks < len(texts); {
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("seeding: %d of %d acked: %v", acks, len(texts), err)
		}
		var f struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		switch f.Type {
		case "ack":
			acks++
		case "error":
			t.Fatalf("seeding: %s", data)
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")
}
