// Package embedbench holds the embedding server's benchmarks (make bench,
// make bench-embedserver). Each prints a ratio measured in the same run: the
// server against calling the fake upstream directly, coalescing, overload with
// 10,000 connections, and the builtin model's throughput. Because clients,
// server and upstream share the machine's cores, the overhead and overload
// benchmarks also measure floors in the same run: a bare httputil.ReverseProxy,
// the server without its upstream hop, and a bare net/http 429 server (see
// docs/embedserver.md). Numbers are printed, never asserted.
package embedbench
