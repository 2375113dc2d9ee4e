package wire

// The roles a projected Secret serves (its `role` file).
const (
	RoleVerifier  = "verifier"
	RolePresenter = "presenter"
)

// Domain is the part every per-rotation pod annotation key shares.
const Domain = ".keyrotor.dev/"

// ReportKey is the pod annotation carrying the revision of role's projected
// Secret of rotation that the pod loaded.
func ReportKey(rotation, role string) string { return rotation + Domain + role + "-revision" }

// NudgeKey is the operator's nudge annotation on a consumer pod.
func NudgeKey(rotation string) string { return rotation + Domain + "nudge" }

// LastSeenKey is a verifier pod's last-seen annotation (Traffic mode).
func LastSeenKey(rotation string) string { return rotation + Domain + "last-seen" }

// TrafficKey is a gateway verifier's traffic annotation.
func TrafficKey(rotation string) string { return rotation + Domain + "traffic" }

// HandshakeRevisionFile is the handshake file in which a library says which
// revision of role's Secret of rotation its process uses.
func HandshakeRevisionFile(rotation, role string) string { return rotation + "." + role + "-revision" }

// HandshakeLastSeenFile is the handshake file holding rotation's last-seen.
func HandshakeLastSeenFile(rotation string) string { return rotation + ".last-seen" }
