// Command etcd is etcd's own server entry point, built from the pinned module so
// that envtest and the local control plane need no binary download.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
