package sdk

import (
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// sdkModule is the Go SDK's module directory, seen from this package's.
const sdkModule = "../../sdk/go"

// serverModules are module path parts of what runs natter's servers. None may enter the SDK
// module's dependency graph: go get of the SDK must not pull the server.
var serverModules = []string{
	"github.com/natter-chat/natter/streams", "github.com/natter-chat/natter/pkg",
	"github.com/natter-chat/natter/services", "github.com/nats-io/", "github.com/cockroachdb/",
	"github.com/gocql/", "github.com/scylladb/", "github.com/gofiber/", "go.uber.org/",
	"github.com/prometheus/", "github.com/blevesearch/", "github.com/golang-jwt/",
	"firebase.google.com/", "github.com/appleboy/",
}

// goIn runs the go command in the SDK module alone (no go.work), as a user's go get sees it.
func goIn(t *testing.T, args ...string) []string {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = sdkModule
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=readonly")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("go %s in %s: %v\n%s", strings.Join(args, " "), sdkModule, err, stderr)
	}
	return strings.Fields(string(out))
}

// The SDK module's whole module graph (every module go get would fetch) holds no server module.
func TestSDKModuleHasNoServerDependency(t *testing.T) {
	mods := goIn(t, "list", "-m", "-f", "{{.Path}}", "all")
	if len(mods) == 0 || mods[0] != "github.com/natter-chat/natter/sdk/go" {
		t.Fatalf("go list -m all in %s: %q, want the SDK module first", sdkModule, mods)
	}
	for _, m := range mods {
		for _, bad := range serverModules {
			if strings.HasPrefix(m, bad) {
				t.Errorf("the SDK module depends on %s (a server module, %s*): go get of the SDK would pull it", m, bad)
			}
		}
	}
}

// The contract leaf, sdk/go/protocol, that clients and servers share imports nothing outside the
// standard library and its own packages (sdk/go/protocol/...), which import nothing else either
// (-deps lists every package it needs, however indirectly).
func TestProtocolImportsOnlyTheStandardLibrary(t *testing.T) {
	const protocol = "github.com/natter-chat/natter/sdk/go/protocol"
	deps := goIn(t, "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", "./protocol")
	if !slices.Contains(deps, protocol) {
		t.Fatalf("go list -deps ./protocol: %q, want %s among them", deps, protocol)
	}
	for _, d := range deps {
		if d != protocol && !strings.HasPrefix(d, protocol+"/") {
			t.Errorf("sdk/go/protocol imports %s, beyond the standard library and its own packages", d)
		}
	}
}
