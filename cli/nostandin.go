//go:build nostandin

package cli

// standinCommands: the production image has neither localaws nor dev.
func standinCommands() []command { return nil }
