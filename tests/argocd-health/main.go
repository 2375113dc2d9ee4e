// Runs keyrotor's Argo CD health check (deploy/argocd/health.lua) on the
// interpreter Argo CD embeds (gopher-lua, Lua 5.1) the way Argo CD does: the
// object as the global `obj`, only the libraries Argo CD opens, and a table
// with `status` and `message` as the answer. Cases are listed in Argo CD's own
// health_test.yaml format.
//
//	go run . ../../deploy/argocd/health.lua health_test.yaml
package main

import (
	"fmt"
	"os"
	"path/filepath"

	lua "github.com/yuin/gopher-lua"
	"gopkg.in/yaml.v3"
)

type testCase struct {
	HealthStatus struct {
		Status  string `yaml:"status"`
		Message string `yaml:"message"`
	} `yaml:"healthStatus"`
	InputPath string `yaml:"inputPath"`
}

// Argo CD's health statuses.
var known = map[string]bool{"Healthy": true, "Progressing": true, "Degraded": true, "Suspended": true, "Missing": true, "Unknown": true}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: argocd-health SCRIPT.lua health_test.yaml")
		os.Exit(2)
	}
	script, err := os.ReadFile(os.Args[1])
	check(err)
	var suite struct {
		Tests []testCase `yaml:"tests"`
	}
	raw, err := os.ReadFile(os.Args[2])
	check(err)
	check(yaml.Unmarshal(raw, &suite))
	if len(suite.Tests) == 0 {
		fail("no tests in %s", os.Args[2])
	}
	dir := filepath.Dir(os.Args[2])
	failed := 0
	for _, tc := range suite.Tests {
		input, err := os.ReadFile(filepath.Join(dir, tc.InputPath))
		check(err)
		var obj map[string]any
		check(yaml.Unmarshal(input, &obj))
		status, message, err := run(string(script), obj)
		switch {
		case err != nil:
			fmt.Printf("FAIL %s: %v\n", tc.InputPath, err)
			failed++
		case !known[status]:
			fmt.Printf("FAIL %s: %q is not an Argo CD health status\n", tc.InputPath, status)
			failed++
		case status != tc.HealthStatus.Status || message != tc.HealthStatus.Message:
			fmt.Printf("FAIL %s: got %s %q, want %s %q\n", tc.InputPath, status, message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			failed++
		default:
			fmt.Printf("ok   %s: %s\n", tc.InputPath, status)
		}
	}
	if failed > 0 {
		fail("%d of %d health cases failed", failed, len(suite.Tests))
	}
}

// run evaluates the script like Argo CD's util/lua: no default libraries,
// then package, base and table only (no io, os or string).
func run(script string, obj map[string]any) (string, string, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		l.Push(l.NewFunction(lib.open))
		l.Push(lua.LString(lib.name))
		l.Call(1, 0)
	}
	l.SetGlobal("obj", decode(l, obj))
	if err := l.DoString(script); err != nil {
		return "", "", err
	}
	table, ok := l.Get(-1).(*lua.LTable)
	if !ok {
		return "", "", fmt.Errorf("the script returned %s, not a table", l.Get(-1).Type())
	}
	return lua.LVAsString(table.RawGetString("status")), lua.LVAsString(table.RawGetString("message")), nil
}

// decode turns a decoded YAML/JSON value into Lua values as Argo CD does.
func decode(l *lua.LState, v any) lua.LValue {
	switch v := v.(type) {
	case map[string]any:
		t := l.NewTable()
		for k, e := range v {
			t.RawSetString(k, decode(l, e))
		}
		return t
	case []any:
		t := l.NewTable()
		for _, e := range v {
			t.Append(decode(l, e))
		}
		return t
	case string:
		return lua.LString(v)
	case bool:
		return lua.LBool(v)
	case int:
		return lua.LNumber(v)
	case float64:
		return lua.LNumber(v)
	case nil:
		return lua.LNil
	default:
		return lua.LString(fmt.Sprint(v))
	}
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "argocd-health: "+format+"\n", args...)
	os.Exit(1)
}
