// Package embedbench holds the embedding server's benchmarks (make bench,
// make bench-embedserver). Each prints a ratio measured in the same run: the
// server against calling the fake upstream directly, coalescing, overload with
// 10,000 connections, and the builtin model's throughput. Numbers are printed,
// never asserted.
package embedbench
