/**
 * The wire contract's names and the codecs of the values a consumer pod carries (revision
 * report, nudge, last-seen, traffic), strict and lenient, written for hostile input: the
 * length is checked before the text is read, entries are capped, and an error quotes at most
 * 32 characters of the value.
 */
package dev.keyrotor.consumer.wire;
