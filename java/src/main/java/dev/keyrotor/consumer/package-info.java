/**
 * keyrotor's consumer library for Java: read a mounted projected Secret as docs/wire.md
 * specifies, verify presented keys ({@link dev.keyrotor.consumer.Verifier}), present the
 * current key ({@link dev.keyrotor.consumer.Presenter}), and confirm what the process loaded
 * through the handshake directory shared with the {@code keyrotor reporter} sidecar.
 */
package dev.keyrotor.consumer;
