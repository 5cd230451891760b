package browser

import (
	"net/http"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// signUpAPI signs handle up over the HTTP API and returns its id and access token.
func signUpAPI(t *testing.T, api, handle string) (id, token string) {
	t.Helper()
	var out struct {
		User struct {
			ID string `json:"id"`
		} `json:"user"`
		Token string `json:"token"`
	}
	apiCall(t, http.MethodPost, api+"/v1/signup", "", map[string]string{"handle": handle, "password": password}, &out)
	return out.User.ID, out.Token
}

// logIn logs in on the login form; it returns when the socket is live.
func (b *browser) logIn(handle string) {
	b.t.Helper()
	b.do("log in",
		chromedp.SendKeys(chromedp.ID("login-handle"), handle),
		chromedp.SendKeys(chromedp.ID("login-password"), password),
		chromedp.Click(chromedp.CSS(`#login-form button[value="login"]`)),
	)
	b.until("connected", `document.querySelector("#connection").dataset.state === "live"`)
}

// messageWith is a JavaScript expression: the shown message whose text is text (null if none).
func messageWith(text string) string {
	return `[...document.querySelectorAll("#messages li.msg:not(.event)")].find(li => li.querySelector(".text")?.textContent === ` + jsString(text) + `)`
}

// sentSeq waits until the page shows its message text with a seq and its actions, and returns the seq.
func (b *browser) sentSeq(text string) string {
	b.t.Helper()
	b.until(text+" is acked", messageWith(text)+`?.querySelector(".actions") != null`)
	var seq string
	b.eval(messageWith(text)+`.dataset.seq`, &seq)
	return seq
}

// TestEditAndDeleteInBrowsers: in a direct conversation Alice edits a message inline and Bob's
// page shows the new text marked edited; she deletes one for everyone and it becomes a
// tombstone on both pages; Bob deletes one for himself only; an edit saved after the edit window
// passed is refused with the server's reason, and the Edit button is gone by then. Bob's reload
// shows the same from history. In a group, its owner deletes Bob's message for everyone.
func TestEditAndDeleteInBrowsers(t *testing.T) {
	const window = 8 * time.Second
	n := startNatter(t, "--edit-window", window.String())
	shots := artifacts(t)
	step := 0

	// The accepted direct conversation is made over the API: opened by each of them.
	aliceID, aliceToken := signUpAPI(t, n.API, "alice")
	bobID, bobToken := signUpAPI(t, n.API, "bob")
	var conv struct {
		ID string `json:"id"`
	}
	apiCall(t, http.MethodPost, n.API+"/v1/conversations/direct", aliceToken, map[string]string{"user_id": bobID}, &conv)
	apiCall(t, http.MethodPost, n.API+"/v1/conversations/direct", bobToken, map[string]string{"user_id": aliceID}, &conv)

	alice := newBrowser(t, "alice", shots, &step)
	bob := newBrowser(t, "bob", shots, &step)
	for _, b := range []*browser{alice, bob} {
		b.open(n.API)
		b.logIn(b.name)
		b.click("open the chat", "#conversations button")
		b.until("the chat is open", `document.querySelector("#history-status").textContent === "No messages yet: say hello"`)
	}

	// An editor opened at once on the first message stays open past the edit window (below).
	alice.send("tpyo here")
	late := alice.sentSeq("tpyo here")
	alice.click("edit the first message", `#messages li[data-seq="`+late+`"] [data-action=edit]`)
	alice.until("its editor is open", `document.querySelector('#messages li[data-seq="`+late+`"] textarea.edit-text')?.value === "tpyo here"`)

	// An edit inline: Bob sees the new text, marked edited.
	alice.send("see you at 5")
	edited := alice.sentSeq("see you at 5")
	alice.click("edit", `#messages li[data-seq="`+edited+`"] [data-action=edit]`)
	alice.do("type the new text", chromedp.SetValue(chromedp.CSS(`#messages li[data-seq="`+edited+`"] textarea.edit-text`), "see you at 6"))
	alice.click("save", `#messages li[data-seq="`+edited+`"] form.edit button[type=submit]`)
	for _, b := range []*browser{alice, bob} {
		b.until("the edit shows, marked", `(() => { const li = document.querySelector('#messages li[data-seq="`+edited+`"]');
			return li?.querySelector(".text").textContent === "see you at 6" && li.querySelector(".edited") !== null &&
				li.querySelector("form.edit") === null; })()`)
	}
	bob.shot("edited")

	// A delete for everyone asks for a second click; both pages show the tombstone.
	alice.send("oops, wrong chat")
	gone := alice.sentSeq("oops, wrong chat")
	alice.click("delete", `#messages li[data-seq="`+gone+`"] [data-action=delete]`)
	alice.until("it asks to confirm", `document.querySelector('#messages li[data-seq="`+gone+`"] [data-action=delete]')?.textContent === "Delete for everyone?"`)
	alice.click("confirm", `#messages li[data-seq="`+gone+`"] [data-action=delete]`)
	tombstone := func(seq string) string {
		return `(() => { const li = document.querySelector('#messages li[data-seq="` + seq + `"]');
			return li?.classList.contains("deleted") && li.querySelector(".text").textContent === "This message was deleted" &&
				li.querySelector(".actions") === null; })()`
	}
	for _, b := range []*browser{alice, bob} {
		b.until("the tombstone shows", tombstone(gone))
	}
	// Bob may not edit or delete Alice's messages for everyone: he is offered only his own delete.
	var offered []string
	bob.eval(`[...document.querySelectorAll('#messages li[data-seq="`+edited+`"] .actions button')].map(b => b.dataset.action)`, &offered)
	if len(offered) != 1 || offered[0] != "hide" {
		t.Errorf("bob is offered %q on alice's message, want only hide", offered)
	}
	bob.click("delete for me", `#messages li[data-seq="`+edited+`"] [data-action=hide]`)
	bob.until("hidden for bob", tombstone(edited))
	bob.shot("deleted and hidden")

	// The edit window passes with the first editor still open: the button of the message is gone,
	// and saving shows the server's refusal.
	alice.until("the edit window passed", `document.querySelector('#messages li[data-seq="`+late+`"]').dataset.editable === "false"`)
	alice.do("fix the typo", chromedp.SetValue(chromedp.CSS(`#messages li[data-seq="`+late+`"] textarea.edit-text`), "typo here"))
	alice.click("save too late", `#messages li[data-seq="`+late+`"] form.edit button[type=submit]`)
	alice.until("the refusal shows", `document.querySelector("#chat-error").textContent === "Not edited: The time to edit this message has passed."`)
	alice.shot("edit refused")

	// A group, made over the API: Alice owns it, Bob accepted her invitation.
	var group struct {
		Conversation struct {
			ID string `json:"id"`
		} `json:"conversation"`
	}
	apiCall(t, http.MethodPost, n.API+"/v1/groups", aliceToken, map[string]any{"name": "Plans", "member_ids": []string{bobID}}, &group)
	apiCall(t, http.MethodPost, n.API+"/v1/conversations/"+group.Conversation.ID+"/accept", bobToken, nil, &group)

	// Bob's reload reads it all from history; Alice still has the message Bob hid for himself.
	bob.do("reload", chromedp.Reload())
	bob.until("connected", `document.querySelector("#connection").dataset.state === "live"`)
	bob.click("open the chat", `#conversations button[data-conv^="d"]`)
	bob.until("history shows the same", tombstone(edited)+` && `+tombstone(gone)+` &&
		document.querySelector('#messages li[data-seq="`+late+`"] .text')?.textContent === "tpyo here" &&
		document.querySelector('#messages li[data-seq="`+late+`"] .edited') === null`)
	alice.until("alice still sees her edited message", `document.querySelector('#messages li[data-seq="`+edited+`"] .text')?.textContent === "see you at 6"`)

	// In the group, its owner deletes Bob's message for everyone.
	bob.click("open the group", `#conversations button[data-conv^="g"]`)
	bob.until("the group is open", `document.querySelector("#chat-title").textContent === "Plans"`)
	bob.send("let's go by train")
	theirs := bob.sentSeq("let's go by train")
	alice.click("open the group", `#conversations button[data-conv^="g"]`)
	alice.until("bob's message, with delete offered", `document.querySelector('#messages li[data-seq="`+theirs+`"] [data-action=delete]') !== null &&
		document.querySelector('#messages li[data-seq="`+theirs+`"] [data-action=edit]') === null`)
	alice.click("delete bob's message", `#messages li[data-seq="`+theirs+`"] [data-action=delete]`)
	alice.click("confirm", `#messages li[data-seq="`+theirs+`"] [data-action=delete][data-confirm=yes]`)
	for _, b := range []*browser{alice, bob} {
		b.until("the owner's delete shows", tombstone(theirs))
	}
	bob.shot("deleted by the group owner")
}
