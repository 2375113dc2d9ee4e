// Runs deploy/argocd/health.lua on gopher-lua, the Lua 5.1 Argo CD embeds.
module keyrotor.dev/tests/argocd-health

go 1.26.0

require (
	github.com/yuin/gopher-lua v1.1.2
	gopkg.in/yaml.v3 v3.0.1
)
