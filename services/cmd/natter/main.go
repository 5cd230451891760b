// Command natter is the whole chat backend in one binary:
//
//	natter run [flags]        every component (or --target a subset) in one process
//	natter init [flags]       apply the NATS stream definitions (idempotent)
//	natter nats-users [flags] print the least-privilege nats-server users of a deployment
//	natter migrate [flags]    apply the ScyllaDB schema (idempotent)
//	natter push why ...       why a user did (not) get a push for a message
//	natter search rebuild     drop the search index and rebuild it from CHAT (search status: its lag)
//	natter push redrive ...   send the push requests in PUSH_DEAD again
//	natter backup --out DIR   online backup of the embedded store (and --streams)
//	natter restore --from DIR restore a backup, then replay the streams from where it ends
//	natter replay [flags]     re-drive a stream range into the store or onto a subject
//	natter version
//
// Every flag can also be set by an environment variable: --data-dir is NATTER_DATA_DIR.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
)

var version = "dev"

const usage = `natter — a chat backend on NATS JetStream

Usage:
  natter run [flags]    run natter (all components by default; see natter run -h)
  natter init [flags]   apply the streams, buckets and consumers to NATS (idempotent; takes natter run's flags)
  natter nats-users [flags]
                        print nats-server users with each target's least permissions (takes natter run's flags)
  natter migrate        apply the ScyllaDB schema migrations (idempotent; see natter migrate -h)
  natter bench [flags]  load natter over WebSockets against raw baselines (see natter bench -h)
  natter push why --user U --message M
                        why U did (not) get a push for message M, from the push ledger
  natter search status|rebuild
                        the search index's lag; drop and rebuild it from CHAT with a progress bar
  natter push redrive [flags]
                        send the push requests in PUSH_DEAD again (dry run by default)
  natter backup --out DIR
                        online, consistent backup of a running natter's store (and --streams)
  natter restore --from DIR
                        restore a backup into --data-dir and replay the streams from where it ends
  natter replay [flags] re-drive a stream range into the store (--apply) or onto a subject (dry run by default)
  natter version        print the version

Every flag can be given as an environment variable: --data-dir is NATTER_DATA_DIR.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "run":
		err = runCmd(os.Args[2:])
	case "init":
		err = initCmd(os.Args[2:])
	case "nats-users":
		err = natsUsersCmd(os.Args[2:])
	case "migrate":
		err = migrateCmd(os.Args[2:])
	case "bench":
		err = benchCmd(os.Args[2:])
	case "push":
		err = pushCmd(os.Args[2:])
	case "search":
		err = searchCmd(os.Args[2:])
	case "backup":
		err = backupCmd(os.Args[2:], os.Stdout)
	case "restore":
		err = restoreCmd(os.Args[2:], os.Stdout)
	case "replay":
		err = replayCmd(os.Args[2:], os.Stdout)
	case "version", "--version", "-v":
		fmt.Println("natter", version)
	case "help", "-h", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "natter: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return // -h printed the flags
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "natter:", err)
		os.Exit(1)
	}
}
