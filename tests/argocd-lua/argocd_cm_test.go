// keyrotor's health check through argocd-cm, the way Argo CD's application
// controller reads it: Argo CD's default argocd-cm (its install manifests)
// with deploy/argocd/health-patch.yaml merged in, read by Argo CD's settings
// manager, and each case of health_test.yaml evaluated by the resource
// overrides the controller builds from it (no open Lua libraries, unlike
// the built-in scripts TestLuaHealthScript runs).
//
// .ci/argocd-lua copies this file into a copy of Argo CD's util/lua and runs
// it there, beside Argo CD's own TestLuaHealthScript. It reads its inputs
// from the environment: KEYROTOR_ARGOCD_CM (Argo CD's argocd-cm.yaml) and
// KEYROTOR_HEALTH_PATCH (deploy/argocd/health-patch.yaml).
package lua_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

const keyrotorDir = "../../resource_customizations/keyrotor.dev/ApiKeyRotation"

func readYAML(t *testing.T, path string, into any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(raw, into))
}

func env(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	require.NotEmpty(t, v, "%s is not set (run .ci/argocd-lua)", name)
	return v
}

func TestKeyrotorHealthThroughArgocdCM(t *testing.T) {
	var cm corev1.ConfigMap
	readYAML(t, env(t, "KEYROTOR_ARGOCD_CM"), &cm)
	var patch corev1.ConfigMap
	readYAML(t, env(t, "KEYROTOR_HEALTH_PATCH"), &patch)
	require.Len(t, patch.Data, 1, "the health patch sets one key of argocd-cm")
	// A JSON merge patch of data: its keys replace or add, the others stay.
	for k, v := range patch.Data {
		cm.Data[k] = v
	}
	cm.Namespace = "argocd"

	mgr := settings.NewSettingsManager(t.Context(), fake.NewClientset(&cm), "argocd")
	overrides, err := mgr.GetResourceOverrides()
	require.NoError(t, err)
	override, ok := overrides["keyrotor.dev/ApiKeyRotation"]
	require.True(t, ok, "argocd-cm has no override for keyrotor.dev/ApiKeyRotation")
	script, err := os.ReadFile(filepath.Join(keyrotorDir, "health.lua"))
	require.NoError(t, err)
	require.Equal(t, string(script), override.HealthLua, "argocd-cm does not carry health.lua as it is")
	require.False(t, override.UseOpenLibs)

	var suite struct {
		Tests []struct {
			InputPath    string               `json:"inputPath"`
			HealthStatus *health.HealthStatus `json:"healthStatus"`
		} `json:"tests"`
	}
	readYAML(t, filepath.Join(keyrotorDir, "health_test.yaml"), &suite)
	require.NotEmpty(t, suite.Tests)
	for _, tc := range suite.Tests {
		t.Run(tc.InputPath, func(t *testing.T) {
			obj := &unstructured.Unstructured{}
			readYAML(t, filepath.Join(keyrotorDir, tc.InputPath), &obj.Object)
			got, err := lua.ResourceHealthOverrides(overrides).GetResourceHealth(obj)
			require.NoError(t, err)
			assert.Equal(t, tc.HealthStatus, got)
		})
	}
}
