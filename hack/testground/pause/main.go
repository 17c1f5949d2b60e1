// pause holds a pod's namespaces: it sleeps until SIGTERM or SIGINT, then exits 0. Statically
// linked, it is the only file of the test ground's pause image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
