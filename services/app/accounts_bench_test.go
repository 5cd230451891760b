package app_test

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/natter-chat/natter/services/app/apptest"
)

// BenchmarkAccountWrites measures sign-up, login and profile change through the real HTTP API
// of an in-process natter (bcrypt at its minimum cost, so the figures show the store and
// stream work): go test -run '^$' -bench AccountWrites ./services/app/
func BenchmarkAccountWrites(b *testing.B) {
	sys := apptest.Start(b)
	signups := 0
	b.Run("signup", func(b *testing.B) {
		for range b.N {
			signups++
			sys.Do("POST", "/v1/signup", "", map[string]string{"handle": fmt.Sprintf("signup_%d", signups), "password": "password-x"},
				http.StatusCreated, nil)
		}
	})
	u := sys.SignUp("bench_user")
	b.Run("login", func(b *testing.B) {
		for range b.N {
			sys.Do("POST", "/v1/login", "", map[string]string{"handle": u.Handle, "password": "password-" + u.Handle}, http.StatusOK, nil)
		}
	})
	b.Run("patch_me", func(b *testing.B) {
		for i := range b.N {
			sys.Do("PATCH", "/v1/me", u.Token, map[string]string{"display_name": fmt.Sprintf("name %d", i)}, http.StatusOK, nil)
		}
	})
}
