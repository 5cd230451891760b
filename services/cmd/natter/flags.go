package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
)

// envFlags makes every flag of fs default to NATTER_<NAME> from the environment (dashes become
// underscores), applied before the command line so that flags win.
func envFlags(fs *flag.FlagSet) error {
	var err error
	fs.VisitAll(func(f *flag.Flag) {
		name := "NATTER_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok && err == nil {
			if serr := f.Value.Set(v); serr != nil {
				err = fmt.Errorf("%s=%q: %w", name, v, serr)
			}
		}
	})
	return err
}
