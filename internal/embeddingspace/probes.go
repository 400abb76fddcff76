package embeddingspace

import (
	_ "embed"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Bounds on a probe set. All probes go to each server in one request, so the
// set must fit the embedding server's limits (2048 inputs and a 4 MiB body by
// default) with room for JSON escaping, which at most doubles a text that has
// no control characters, and for the long probes (about 90 KB) that every set
// carries. One probe may hold 128 KiB: a text past a window of 8,192 tokens
// is 40 KB or more, and a user who checks truncation with their own long
// chunks needs that room.
const (
	MaxProbes     = 1024
	MaxProbeBytes = 128 << 10 // one probe text
	MaxProbeSet   = 1 << 20   // all probe texts together
)

//go:embed probes.txt
var builtinProbes string

// builtin is parsed once; TestBuiltinProbes keeps the embedded file valid, so
// the panic cannot fire in a binary whose tests passed.
var builtin = func() []string {
	p, err := ParseProbes(builtinProbes)
	if err != nil {
		panic("embeddingspace: the built-in probes.txt is invalid: " + err.Error())
	}
	return p
}()

// BuiltinProbes returns the built-in probe texts: varied topics, lengths and
// scripts, so a change of tokenizer, normalisation or truncation moves at
// least some of them. The caller may keep or modify the slice.
func BuiltinProbes() []string { return append([]string(nil), builtin...) }

// ParseProbes reads a probe set as a user keeps it in a ConfigMap: one text per
// line, each trimmed of surrounding white space; empty lines and lines starting
// with "#" are skipped (a text cannot start with "#"). It refuses, naming the
// line (from 1), invalid UTF-8, control characters other than tab, a text over
// MaxProbeBytes, a repeated text, and sets with fewer than MinProbes texts, more
// than MaxProbes or more than MaxProbeSet bytes. A leading byte order mark is
// ignored.
func ParseProbes(content string) ([]string, error) {
	content = strings.TrimPrefix(content, "\uFEFF")
	var (
		out   []string
		total int
		seen  = map[string]int{} // text -> line
	)
	for n, line := range strings.Split(content, "\n") {
		n++
		if !utf8.ValidString(line) {
			return nil, fmt.Errorf("line %d: invalid UTF-8", n)
		}
		text := strings.TrimSpace(line)
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		if r, ok := control(text); ok {
			return nil, fmt.Errorf("line %d: control character %U", n, r)
		}
		if len(text) > MaxProbeBytes {
			return nil, fmt.Errorf("line %d: %d bytes, at most %d are allowed per probe", n, len(text), MaxProbeBytes)
		}
		if first, ok := seen[text]; ok {
			return nil, fmt.Errorf("line %d repeats line %d", n, first)
		}
		seen[text] = n
		if len(out) == MaxProbes {
			return nil, fmt.Errorf("more than %d probes (line %d is probe %d)", MaxProbes, n, MaxProbes+1)
		}
		if total += len(text); total > MaxProbeSet {
			return nil, fmt.Errorf("line %d: the probes pass %d bytes in all", n, MaxProbeSet)
		}
		out = append(out, text)
	}
	switch {
	case len(out) == 0:
		return nil, errors.New("no probes: every line is empty or a # comment")
	case len(out) < MinProbes:
		return nil, fmt.Errorf("%d probes: at least %d are needed", len(out), MinProbes)
	}
	return out, nil
}

// control finds a control character other than tab.
func control(s string) (rune, bool) {
	for _, r := range s {
		if r != '\t' && unicode.IsControl(r) {
			return r, true
		}
	}
	return 0, false
}
