// Package nodeagent is the local node agent of the ragops development cluster: it
// registers a Node and runs the pods scheduled to it whose image is the embedding
// server's as real local processes, each bound to its own local address used as
// the pod IP. No container runtime is involved.
//
// The pure parts (address allocation, argument and environment building, pod
// status) have no client and no clock; the Agent wires them to client-go.
package nodeagent
