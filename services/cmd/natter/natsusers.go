package main

import (
	"fmt"

	"github.com/natter-chat/natter/pkg/natsperm"
)

// natsUsersCmd is natter nats-users: print the nats-server users of a deployment, one per target
// with its least permissions (pkg/natsperm), an administrator and an all-in-one user. It takes
// natter run's flags: the fanout partitions name consumers in the permissions.
func natsUsersCmd(args []string) error {
	cfg, _, err := parseRun("nats-users", args)
	if err != nil {
		return err
	}
	conf, err := natsperm.Config(natsperm.DeployUsers(), cfg.Streams)
	if err != nil {
		return err
	}
	_, err = fmt.Print(conf)
	return err
}
