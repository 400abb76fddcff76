package platform

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	lua "github.com/yuin/gopher-lua"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

const (
	argoActionsFile = root + "/docs/examples/gitops/argocd-cm-actions.yaml"
	// The argocd-cm key of an actions customization: group_Kind.
	argoActionsKey = "resource.customizations.actions.rag.ragops.io_RAGService"
)

// argoActions is the value of an actions key, as Argo CD reads it
// (ResourceActions in argo-cd's application types).
type argoActions struct {
	Discovery   string `json:"discovery.lua"`
	Definitions []struct {
		Name   string `json:"name"`
		Action string `json:"action.lua"`
	} `json:"definitions"`
}

func readArgoActions(t *testing.T) argoActions {
	t.Helper()
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(readFile(t, argoActionsFile), &cm); err != nil {
		t.Fatalf("%s: %v", argoActionsFile, err)
	}
	if cm.Name != "argocd-cm" || cm.Namespace != "argocd" {
		t.Errorf("%s is ConfigMap %s/%s, want argocd/argocd-cm (Argo CD reads only that one)", argoActionsFile, cm.Namespace, cm.Name)
	}
	var a argoActions
	if err := yaml.UnmarshalStrict([]byte(cm.Data[argoActionsKey]), &a); err != nil {
		t.Fatalf("%s: data[%s]: %v", argoActionsFile, argoActionsKey, err)
	}
	if a.Discovery == "" || len(a.Definitions) == 0 {
		t.Fatalf("%s: data[%s] has no discovery.lua or no definitions", argoActionsFile, argoActionsKey)
	}
	return a
}

// runArgoActionLua runs an action or discovery script the way Argo CD's
// controller does (util/lua in argo-cd, runLua): gopher-lua with only the
// package, base and table libraries and a "safe" os library (date and time),
// a one-second deadline, the object as the global `obj`; the returned table
// is read back as Go values.
func runArgoActionLua(script string, obj map[string]any) (any, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}, {lua.OsLibName, lua.OpenOs}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return nil, fmt.Errorf("opening %s: %w", lib.name, err)
		}
	}
	// Argo CD's safe os offers date and time, nothing that touches the system.
	full, ok := l.GetGlobal(lua.OsLibName).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("no os library")
	}
	safe := l.NewTable()
	safe.RawSetString("date", full.RawGetString("date"))
	safe.RawSetString("time", full.RawGetString("time"))
	l.SetGlobal(lua.OsLibName, safe)

	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", luaValue(l, obj))
	if err := l.DoString(script); err != nil {
		return nil, err
	}
	tbl, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("the script returned %s, want a table", l.Get(-1).Type())
	}
	return goValue(tbl), nil
}

// goValue converts what a script returns back to JSON-like Go values.
func goValue(v lua.LValue) any {
	switch x := v.(type) {
	case lua.LBool:
		return bool(x)
	case lua.LNumber:
		return float64(x)
	case lua.LString:
		return string(x)
	case *lua.LTable:
		if n := x.MaxN(); n > 0 {
			out := make([]any, 0, n)
			for i := 1; i <= n; i++ {
				out = append(out, goValue(x.RawGetInt(i)))
			}
			return out
		}
		out := map[string]any{}
		x.ForEach(func(k, val lua.LValue) { out[k.String()] = goValue(val) })
		return out
	}
	return nil
}

// discover returns, per action, whether Argo CD shows it enabled.
func discover(t *testing.T, script string, obj map[string]any) map[string]bool {
	t.Helper()
	got, err := runArgoActionLua(script, obj)
	if err != nil {
		t.Fatalf("discovery.lua: %v", err)
	}
	m, ok := got.(map[string]any)
	if !ok {
		t.Fatalf("discovery.lua returned %#v, want a table of actions", got)
	}
	out := map[string]bool{}
	for name, v := range m {
		a, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("discovery.lua: action %s is %#v, want a table", name, v)
		}
		disabled, _ := a["disabled"].(bool)
		out[name] = !disabled
	}
	return out
}

// The actions offered for each status the envtest suite recorded
// (config/argocd/.../testdata), and for a failure held without autoRollback.
func TestArgoCDActionsDiscovery(t *testing.T) {
	a := readArgoActions(t)
	var names []string
	for _, d := range a.Definitions {
		names = append(names, d.Name)
	}
	if want := []string{"promote", "abort", "retry"}; !slices.Equal(names, want) {
		t.Errorf("definitions %v, want %v", names, want)
	}
	held := `{"metadata":{"name":"docs","generation":2},"status":{"observedGeneration":2,"phase":"Degraded",
		"stableRevision":"rev-a","canaryRevision":"rev-b","conditions":[
		{"type":"Stalled","status":"True","reason":"AnalysisFailed","message":"2 failed analysis intervals exceed failureLimit 1; autoRollback is off"}]}}`
	// The handover: the canary's Deployment grows to full size before one
	// status write makes it stable; then the previous stable revision retires.
	handover := `{"metadata":{"name":"docs","generation":3},"status":{"observedGeneration":3,"phase":"Progressing",
		"stableRevision":"rev-a","canaryRevision":"rev-b","promoting":true,"conditions":[
		{"type":"Reconciling","status":"True","reason":"Promoting","message":"docs-rev-b grows to 4 replicas before it takes over"}]}}`
	retiring := `{"metadata":{"name":"docs","generation":3},"status":{"observedGeneration":3,"phase":"Healthy",
		"stableRevision":"rev-b","retiring":{"revision":"rev-a","since":"2026-12-07T10:00:00Z"},"conditions":[
		{"type":"Ready","status":"True","reason":"Promoted","message":"revision rev-b is stable"}]}}`
	for _, tc := range []struct {
		name, file, inline string
		want               map[string]bool
	}{
		{name: "a canary at a timed pause", file: "progressing.json", want: map[string]bool{"promote": true, "abort": true, "retry": false}},
		{name: "a canary waiting for promote", file: "paused-for-promote.json", want: map[string]bool{"promote": true, "abort": true, "retry": false}},
		{name: "a cutover preview", file: "awaiting-cutover.json", want: map[string]bool{"promote": true, "abort": true, "retry": false}},
		{name: "rolled back", file: "rolled-back.json", want: map[string]bool{"promote": false, "abort": false, "retry": true}},
		{name: "healthy", file: "healthy.json", want: map[string]bool{"promote": false, "abort": false, "retry": false}},
		{name: "no status yet", file: "new.json", want: map[string]bool{"promote": false, "abort": false, "retry": false}},
		{name: "paused by the spec, no canary", file: "paused-by-spec.json", want: map[string]bool{"promote": false, "abort": false, "retry": false}},
		{name: "a failure held without autoRollback", inline: held, want: map[string]bool{"promote": true, "abort": true, "retry": true}},
		{name: "a handover in progress", inline: handover, want: map[string]bool{"promote": false, "abort": true, "retry": false}},
		{name: "handed over, the previous revision retiring", inline: retiring, want: map[string]bool{"promote": false, "abort": false, "retry": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var obj map[string]any
			if tc.file != "" {
				obj = readObject(t, filepath.Join(argoDir, "testdata", tc.file))
			} else if err := yaml.Unmarshal([]byte(tc.inline), &obj); err != nil {
				t.Fatal(err)
			}
			if got := discover(t, a.Discovery, obj); !maps.Equal(got, tc.want) {
				t.Errorf("actions enabled %v, want %v", got, tc.want)
			}
		})
	}
}

// Each action sets its command annotation to the current time (what
// `kubectl rag` writes), keeps the other annotations, and changes nothing else.
func TestArgoCDActionsSetTheCommandAnnotation(t *testing.T) {
	a := readArgoActions(t)
	for _, d := range a.Definitions {
		for _, withAnnotations := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/annotations=%v", d.Name, withAnnotations), func(t *testing.T) {
				obj := readObject(t, filepath.Join(argoDir, "testdata", "paused-for-promote.json"))
				md := obj["metadata"].(map[string]any)
				delete(md, "annotations")
				if withAnnotations {
					md["annotations"] = map[string]any{"team": "search"}
				}
				before := time.Now().UTC().Truncate(time.Second)
				got, err := runArgoActionLua(d.Action, obj)
				if err != nil {
					t.Fatalf("%s action.lua: %v", d.Name, err)
				}
				after := time.Now().UTC()
				out, ok := got.(map[string]any)
				if !ok {
					t.Fatalf("%s action.lua returned %#v, want the object", d.Name, got)
				}
				ann, _ := out["metadata"].(map[string]any)["annotations"].(map[string]any)
				key := "rag.ragops.io/" + d.Name
				val, _ := ann[key].(string)
				at, err := time.Parse(time.RFC3339, val)
				if err != nil || at.Before(before) || at.After(after) {
					t.Errorf("annotation %s = %q, want the time of the action (RFC 3339, UTC, between %s and %s)", key, val, before.Format(time.RFC3339), after.Format(time.RFC3339))
				}
				if withAnnotations && ann["team"] != "search" {
					t.Errorf("the other annotations were not kept: %v", ann)
				}
				if len(ann) != map[bool]int{true: 2, false: 1}[withAnnotations] {
					t.Errorf("annotations %v: want only %s added", ann, key)
				}
				// Nothing but the annotation changed.
				want := readObject(t, filepath.Join(argoDir, "testdata", "paused-for-promote.json"))
				for _, field := range []string{"spec", "status", "apiVersion", "kind"} {
					if !reflect.DeepEqual(normalize(out[field]), normalize(want[field])) {
						t.Errorf("%s action changed %s", d.Name, field)
					}
				}
			})
		}
	}
}

// normalize makes numbers comparable after a trip through Lua (all float64).
func normalize(v any) any {
	b, err := yaml.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = yaml.Unmarshal(b, &out)
	return out
}
