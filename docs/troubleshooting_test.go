// Package docs keeps the documentation honest against the code: a test here
// fails when docs/troubleshooting.md misses a phase, condition or reason the
// operator can write, or documents one it no longer writes.
package docs

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

const troubleshooting = "troubleshooting.md"

// sources are the packages that name the phases, conditions and reasons a
// user sees on a RAGService (status, conditions, events).
var sources = []string{"../api/v1alpha1", "../internal/rollout", "../internal/fleet", "../controllers"}

// reasonArg is, for the planner's methods that take a reason, the position of
// the reason among their arguments (internal/rollout: p.set(t, reason, msg),
// p.wait(reason, msg), p.event(type, reason, msg), ...). A new method of this
// kind belongs here, or the reasons it is given go unchecked.
var reasonArg = map[string]int{
	"set":      1,
	"wait":     0,
	"start":    0,
	"promote":  0,
	"rollback": 0,
	"hold":     0,
	"event":    1,
	// events.EventRecorder.Eventf(regarding, related, type, reason, action, note, ...),
	// as the controller records events.
	"Eventf": 3,
}

// fromCode is what the code can show a user.
type fromCode struct {
	phases, conditions, reasons map[string][]string // name -> where it is written
}

func scan(t *testing.T) fromCode {
	t.Helper()
	got := fromCode{phases: map[string][]string{}, conditions: map[string][]string{}, reasons: map[string][]string{}}
	fset := token.NewFileSet()
	for _, dir := range sources {
		files, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, path := range files {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(fset, path, nil, 0)
			if err != nil {
				t.Fatal(err)
			}
			scanFile(fset, f, got)
		}
	}
	if len(got.phases) == 0 || len(got.conditions) == 0 || len(got.reasons) < 10 {
		t.Fatalf("the scan found %d phases, %d conditions, %d reasons: the code moved and this test no longer reads it",
			len(got.phases), len(got.conditions), len(got.reasons))
	}
	return got
}

func scanFile(fset *token.FileSet, f *ast.File, got fromCode) {
	add := func(into map[string][]string, lit ast.Expr) {
		bl, ok := lit.(*ast.BasicLit)
		if !ok || bl.Kind != token.STRING {
			return // a constant is found at its declaration; a variable carries one found elsewhere
		}
		s, err := strconv.Unquote(bl.Value)
		if err != nil || s == "" {
			return
		}
		p := fset.Position(bl.Pos())
		into[s] = append(into[s], filepath.Base(p.Filename)+":"+strconv.Itoa(p.Line))
	}
	ast.Inspect(f, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.ValueSpec:
			// const PhaseX Phase = "X"; const ConditionX = "X"; const ReasonX = "X"
			for i, name := range n.Names {
				if i >= len(n.Values) {
					break
				}
				typ, _ := n.Type.(*ast.Ident)
				switch {
				case typ != nil && typ.Name == "Phase":
					add(got.phases, n.Values[i])
				case strings.HasPrefix(name.Name, "Condition") && typ == nil:
					add(got.conditions, n.Values[i])
				case strings.HasPrefix(name.Name, "Reason"):
					add(got.reasons, n.Values[i])
				}
			}
		case *ast.CallExpr:
			// p.wait("WaitingForCanaryPods", ...), p.event(EventNormal, "Promoted", ...)
			sel, ok := n.Fun.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if i, ok := reasonArg[sel.Sel.Name]; ok && i < len(n.Args) {
				add(got.reasons, n.Args[i])
			}
		case *ast.KeyValueExpr:
			// Event{Reason: "Ready"}, Problem{Reason: "WaitingForStableRollout"}
			if k, ok := n.Key.(*ast.Ident); ok && k.Name == "Reason" {
				add(got.reasons, n.Value)
			}
		}
		return true
	})
}

// documented is what the page documents: the `### \`Name\“ headings under
// each of its "## Phases", "## Conditions" and "## Reasons" sections.
func documented(t *testing.T) (phases, conditions, reasons map[string]int) {
	t.Helper()
	data, err := os.ReadFile(troubleshooting)
	if err != nil {
		t.Fatal(err)
	}
	phases, conditions, reasons = map[string]int{}, map[string]int{}, map[string]int{}
	var section map[string]int
	heading := regexp.MustCompile("^### `([A-Za-z]+)`")
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(line, "## "):
			switch strings.TrimSpace(strings.TrimPrefix(line, "## ")) {
			case "Phases":
				section = phases
			case "Conditions":
				section = conditions
			case "Reasons":
				section = reasons
			default:
				section = nil
			}
		case section != nil:
			if m := heading.FindStringSubmatch(line); m != nil {
				if _, dup := section[m[1]]; dup {
					t.Errorf("%s:%d: %s is documented twice in its section", troubleshooting, i+1, m[1])
				}
				section[m[1]] = i + 1
			}
		}
	}
	return phases, conditions, reasons
}

// TestTroubleshootingCoversEveryReason fails when the code can write a phase,
// condition type or reason (condition or event) that docs/troubleshooting.md
// has no entry for, or when the page documents one the code no longer writes.
// To fix it, add (or remove) a `### \`Name\“ heading in the section named.
func TestTroubleshootingCoversEveryReason(t *testing.T) {
	code := scan(t)
	phases, conditions, reasons := documented(t)
	for _, c := range []struct {
		section string
		code    map[string][]string
		doc     map[string]int
	}{
		{"## Phases", code.phases, phases},
		{"## Conditions", code.conditions, conditions},
		{"## Reasons", code.reasons, reasons},
	} {
		for _, name := range sortedKeys(c.code) {
			if _, ok := c.doc[name]; !ok {
				t.Errorf("%s is written by the code (%s) but has no \"### `%s`\" entry under %q in docs/%s: say what it means and what to do",
					name, strings.Join(c.code[name], ", "), name, c.section, troubleshooting)
			}
		}
		for _, name := range sortedKeys(c.doc) {
			if _, ok := c.code[name]; !ok {
				t.Errorf("docs/%s:%d documents %s under %q, which the code no longer writes: remove the entry", troubleshooting, c.doc[name], name, c.section)
			}
		}
	}
	t.Logf("documented %d phases, %d conditions, %d reasons", len(phases), len(conditions), len(reasons))
}

// TestTroubleshootingScanFindsWhatItShould pins the scan itself: reasons
// written each way the code writes them are found, so a broken scan cannot
// pass the completeness test by finding nothing new.
func TestTroubleshootingScanFindsWhatItShould(t *testing.T) {
	code := scan(t)
	for _, c := range []struct {
		into map[string][]string
		name string
	}{
		{code.phases, "RolledBack"},                  // a Phase constant
		{code.conditions, "Available"},               // a Condition constant
		{code.reasons, "MinimumReplicasUnavailable"}, // a Reason constant
		{code.reasons, "WaitingForCanaryPods"},       // p.wait("...")
		{code.reasons, "StepAdvanced"},               // p.set(t, "...") and p.event(type, "...")
		{code.reasons, "CanaryStarted"},              // p.start("...")
		{code.reasons, "PromotedManually"},           // p.promote("...")
		{code.reasons, "Promoting"},                  // a Reason constant in internal/rollout
		{code.reasons, "AnnotationIgnored"},          // Event{Reason: "..."}
		{code.reasons, "ProbesNotFound"},             // a Reason constant in controllers
		{code.reasons, "WaitingForFleetRollout"},     // a Reason constant in internal/fleet
	} {
		if _, ok := c.into[c.name]; !ok {
			t.Errorf("the scan of %v did not find %s", sources, c.name)
		}
	}
	// Names that are not reasons stay out.
	for _, notReason := range []string{"Normal", "Warning", "Both", "Canary", ""} {
		if slices.Contains(sortedKeys(code.reasons), notReason) {
			t.Errorf("the scan took %q for a reason", notReason)
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
