package dev.keyrotor.consumer.wire;

/**
 * A value read leniently: what could be read, and how many entries were skipped because
 * they broke the grammar.
 */
public record Lenient<T>(T value, int skipped) {}
