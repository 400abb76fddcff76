package rollout

import (
	"fmt"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Command is a one-shot manual command, given by an annotation.
type Command string

// Commands, in priority order: when several annotations are present at once,
// the first of this list is the pass's command and the others are ignored
// (and removed) with an event. Abort comes first because it is the safe way
// out; retry before promote because a promote of a rolled-back revision means
// nothing until it is retried.
const (
	CommandNone    Command = ""
	CommandAbort   Command = "abort"
	CommandRetry   Command = "retry"
	CommandPromote Command = "promote"
)

// commandOrder is the priority order, highest first.
var commandOrder = []Command{CommandAbort, CommandRetry, CommandPromote}

// Annotation is the annotation that carries the command.
func (c Command) Annotation() string {
	switch c {
	case CommandAbort:
		return v1alpha1.AnnotationAbort
	case CommandRetry:
		return v1alpha1.AnnotationRetry
	case CommandPromote:
		return v1alpha1.AnnotationPromote
	}
	return ""
}

// ResolveCommand turns the present one-shot annotations (whatever their
// values) into the pass's one command, and the commands it outranked.
// Present lists every command annotation found, in priority order: the
// controller removes them all once the decision is recorded.
func ResolveCommand(annotations map[string]string) (cmd Command, outranked []Command) {
	for _, c := range commandOrder {
		if _, ok := annotations[c.Annotation()]; !ok {
			continue
		}
		if cmd == CommandNone {
			cmd = c
		} else {
			outranked = append(outranked, c)
		}
	}
	return cmd, outranked
}

// PresentCommands lists the command annotations present, in priority order.
func PresentCommands(annotations map[string]string) []string {
	var out []string
	for _, c := range commandOrder {
		if _, ok := annotations[c.Annotation()]; ok {
			out = append(out, c.Annotation())
		}
	}
	return out
}

// use marks the command as acted on.
func (p *planner) use() {
	p.used = true
	p.cmd = CommandNone
}

// decline says why the pass's command cannot be acted on; the first reason
// given stands.
func (p *planner) decline(why string) {
	if p.cmd == CommandNone {
		return
	}
	p.cmd = CommandNone
	if p.ignored == "" {
		p.ignored = why
	}
}

// declined is the reason a command was not acted on; never empty for a command
// that no flow used, so no command is ever dropped in silence.
func (p *planner) declined() string {
	if p.in.Command == CommandNone || p.used {
		return ""
	}
	if p.ignored != "" {
		return p.ignored
	}
	return fmt.Sprintf("nothing to %s: %s", p.in.Command, lowerFirst(p.msg))
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	b := []byte(s)
	if b[0] >= 'A' && b[0] <= 'Z' {
		b[0] += 'a' - 'A'
	}
	return string(b)
}

// IgnoredEvent is the event for a command that was not acted on.
func IgnoredEvent(c Command, why string) Event {
	return Event{Type: EventNormal, Reason: "AnnotationIgnored", Message: fmt.Sprintf("Ignored the %s annotation: %s", c, why)}
}
