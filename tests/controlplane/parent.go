package main

import (
	"os"
	"strconv"
	"time"
)

// exitWithParent ends this process when the process named by CONTROLPLANE_PARENT_PID goes away,
// so that a test binary killed without cleanup leaves no control-plane processes behind.
func exitWithParent() {
	parent, err := strconv.Atoi(os.Getenv("CONTROLPLANE_PARENT_PID"))
	if err != nil || parent <= 1 {
		return
	}
	go func() {
		for range time.Tick(500 * time.Millisecond) {
			if os.Getppid() != parent {
				os.Exit(3)
			}
		}
	}()
}
