package rollout

import (
	"fmt"

	"github.com/ragops/rag-operator/api/v1alpha1"
)

// Command is a manual command, given by an annotation whose value is a token:
// the planner acts once per token value (see resolve).
type Command string

// Commands, in priority order: when several carry a new token at once, the
// first of this list is the pass's command and the others are handled as
// ignored, with an event. Abort comes first because it is the safe way out;
// retry before the promotes because a promote of a rolled-back revision means
// nothing until it is retried; promote-full before promote because it does
// all that promote does and more.
const (
	CommandNone        Command = ""
	CommandAbort       Command = "abort"
	CommandRetry       Command = "retry"
	CommandPromoteFull Command = "promote-full"
	CommandPromote     Command = "promote"
)

// commandOrder is the priority order, highest first.
var commandOrder = []Command{CommandAbort, CommandRetry, CommandPromoteFull, CommandPromote}

// Annotation is the annotation that carries the command.
func (c Command) Annotation() string {
	switch c {
	case CommandAbort:
		return v1alpha1.AnnotationAbort
	case CommandRetry:
		return v1alpha1.AnnotationRetry
	case CommandPromote:
		return v1alpha1.AnnotationPromote
	case CommandPromoteFull:
		return v1alpha1.AnnotationPromoteFull
	}
	return ""
}

// promotes says whether the command promotes the canary (a step or fully).
func (c Command) promotes() bool { return c == CommandPromote || c == CommandPromoteFull }

// Tokens reads the command annotations: each command's token is its
// annotation's value. An annotation with an empty value carries no token.
func Tokens(annotations map[string]string) map[Command]string {
	var out map[Command]string
	for _, c := range commandOrder {
		if v := annotations[c.Annotation()]; v != "" {
			if out == nil {
				out = map[Command]string{}
			}
			out[c] = v
		}
	}
	return out
}

// handledToken is the last token of c that handled records.
func handledToken(handled *v1alpha1.HandledCommands, c Command) string {
	if handled == nil {
		return ""
	}
	switch c {
	case CommandAbort:
		return handled.Abort
	case CommandRetry:
		return handled.Retry
	case CommandPromote:
		return handled.Promote
	case CommandPromoteFull:
		return handled.PromoteFull
	}
	return ""
}

// setHandled records token as the last one of c handled.
func setHandled(handled *v1alpha1.HandledCommands, c Command, token string) {
	switch c {
	case CommandAbort:
		handled.Abort = token
	case CommandRetry:
		handled.Retry = token
	case CommandPromote:
		handled.Promote = token
	case CommandPromoteFull:
		handled.PromoteFull = token
	}
}

// resolve picks the pass's command from the tokens present: those whose
// value differs from the last one handled are new, and the first new one in
// priority order is the command; the other new ones are outranked. A token
// already handled (a GitOps tool re-applying the annotation, a re-sync, a
// restore) is nothing. Values written by the previous operator version, which
// removed the annotation itself, are times: as new tokens they work once.
func resolve(tokens map[Command]string, handled *v1alpha1.HandledCommands) (cmd Command, token string, outranked []Command) {
	for _, c := range commandOrder {
		t := tokens[c]
		if t == "" || t == handledToken(handled, c) {
			continue
		}
		if cmd == CommandNone {
			cmd, token = c, t
		} else {
			outranked = append(outranked, c)
		}
	}
	return cmd, token, outranked
}

// use marks the command as acted on; did says what it did.
func (p *planner) use(did string) {
	p.used = true
	p.did = did
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
	if p.command == CommandNone || p.used {
		return ""
	}
	if p.ignored != "" {
		return p.ignored
	}
	return fmt.Sprintf("nothing to %s: %s", p.command, lowerFirst(p.msg))
}

// recordHandled stores every new token of the pass as handled, with what the
// pass's command did (or why it was ignored).
func (p *planner) recordHandled() {
	if p.command == CommandNone {
		return
	}
	h := &v1alpha1.HandledCommands{}
	if p.st.LastHandled != nil {
		h = p.st.LastHandled.DeepCopy()
	}
	setHandled(h, p.command, p.token)
	for _, c := range p.outranked {
		setHandled(h, c, p.in.Tokens[c])
	}
	if p.used {
		h.Result = fmt.Sprintf("%s token %q: %s", p.command, p.token, p.did)
	} else {
		h.Result = fmt.Sprintf("%s token %q ignored: %s", p.command, p.token, p.declined())
	}
	p.st.LastHandled = h
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

// IgnoredEvent is the event for a command token that was not acted on.
func IgnoredEvent(c Command, token, why string) Event {
	return Event{Type: EventNormal, Reason: "AnnotationIgnored", Message: fmt.Sprintf("Ignored the %s annotation (token %q): %s", c, token, why)}
}
