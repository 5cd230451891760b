package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestMain: with NATTER_TEST_RUN_MAIN=1 this test binary is the natter command, so that tests
// run it as people do (flag parsing, help output, exit status); see natter below.
func TestMain(m *testing.M) {
	if os.Getenv("NATTER_TEST_RUN_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// natter runs `natter args...` (this test binary as the command) without the caller's NATTER_*
// environment, and returns what it printed and its exit status.
func natter(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NATTER_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "NATTER_TEST_RUN_MAIN=1")
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("natter %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// flagLine is a flag in the help output of Go's flag package: "  -name type".
var flagLine = regexp.MustCompile(`(?m)^  -([a-z0-9][a-z0-9-]*)\b`)

// helpFlags runs `natter <command...> --help` and returns the flags it lists.
func helpFlags(t *testing.T, command ...string) []string {
	t.Helper()
	stdout, stderr, code := natter(t, append(command, "--help")...)
	if code != 0 {
		t.Fatalf("natter %s --help: exit %d\n%s%s", strings.Join(command, " "), code, stdout, stderr)
	}
	var flags []string
	for _, m := range flagLine.FindAllStringSubmatch(stdout+stderr, -1) {
		flags = append(flags, m[1])
	}
	if len(flags) == 0 {
		t.Fatalf("natter %s --help lists no flags:\n%s%s", strings.Join(command, " "), stdout, stderr)
	}
	return flags
}

func TestPushWhyHelpPrintsUsageOnce(t *testing.T) {
	for _, help := range []string{"--help", "-h"} {
		stdout, stderr, code := natter(t, "push", "why", help)
		out := stdout + stderr
		if code != 0 {
			t.Errorf("push why %s: exit %d", help, code)
		}
		if n := strings.Count(strings.ToLower(out), "usage"); n != 1 {
			t.Errorf("push why %s: usage printed %d times:\n%s", help, n, out)
		}
		for _, f := range []string{"-user", "-message", "-nats-url", "-timeout"} {
			if n := strings.Count(out, "  "+f+" "); n != 1 {
				t.Errorf("push why %s: flag %s listed %d times:\n%s", help, f, n, out)
			}
		}
		if !strings.Contains(out, "natter push why --user U --message M") {
			t.Errorf("push why %s: no synopsis:\n%s", help, out)
		}
	}
}

// flagMention is a flag named in the docs: `--name`.
var flagMention = regexp.MustCompile(`--([a-z][a-z0-9]*(?:-[a-z0-9]+)*)`)

// TestOperationsDocumentsEveryFlag keeps docs/operations.md and the flags in step. The rule:
//
//   - every flag of natter run, migrate, bench, push why, push redrive, backup, restore and replay is named as --flag in that command's
//     section of docs/operations.md ("### `natter run`" and so on). push.md and performance.md
//     may say more about the push and bench flags, but operations.md names them all;
//   - every --flag docs/operations.md names is a flag of some natter command. Code blocks count
//     on their natter lines only, and the section on running the ScyllaDB tests is left out:
//     there the flags are docker's and ScyllaDB's.
func TestOperationsDocumentsEveryFlag(t *testing.T) {
	doc, err := os.ReadFile("../../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	commands := map[string][]string{
		"natter run":          helpFlags(t, "run"),
		"natter migrate":      helpFlags(t, "migrate"),
		"natter bench":        helpFlags(t, "bench"),
		"natter push why":     helpFlags(t, "push", "why"),
		"natter push redrive": helpFlags(t, "push", "redrive"),
		"natter backup":       helpFlags(t, "backup"),
		"natter restore":      helpFlags(t, "restore"),
		"natter replay":       helpFlags(t, "replay"),
	}
	var all []string
	for _, flags := range commands {
		all = append(all, flags...)
	}
	sections := splitSections(string(doc))
	for command, flags := range commands {
		text, ok := sections["### `"+command+"`"]
		if !ok {
			t.Errorf("docs/operations.md has no section ### `%s`", command)
			continue
		}
		named := mentions(text)
		for _, f := range flags {
			if !slices.Contains(named, f) {
				t.Errorf("docs/operations.md, ### `%s`: flag --%s is not described", command, f)
			}
		}
	}
	for heading, text := range sections {
		if heading == "## Running the ScyllaDB tests" {
			continue
		}
		for _, f := range mentions(text) {
			if !slices.Contains(all, f) {
				t.Errorf("docs/operations.md, %s: names --%s, which no natter command has", heading, f)
			}
		}
	}
}

// splitSections cuts a markdown document at its ## and ### headings (heading line -> text),
// keeping only the lines of fenced code blocks that start with natter.
func splitSections(doc string) map[string]string {
	sections := map[string]string{}
	heading := "(top)"
	var text strings.Builder
	inCode := false
	for _, line := range strings.Split(doc, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inCode = !inCode
		case inCode:
			if strings.HasPrefix(line, "natter") || strings.HasPrefix(line, "bin/natter") {
				text.WriteString(line + "\n")
			}
		case strings.HasPrefix(line, "## ") || strings.HasPrefix(line, "### "):
			sections[heading] = text.String()
			heading = line
			text.Reset()
		default:
			text.WriteString(line + "\n")
		}
	}
	sections[heading] = text.String()
	return sections
}

func mentions(text string) []string {
	var names []string
	for _, m := range flagMention.FindAllStringSubmatch(text, -1) {
		if !slices.Contains(names, m[1]) {
			names = append(names, m[1])
		}
	}
	sort.Strings(names)
	return names
}
