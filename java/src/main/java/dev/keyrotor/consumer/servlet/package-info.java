/** The servlet integration: {@link dev.keyrotor.consumer.servlet.KeyrotorFilter}. */
package dev.keyrotor.consumer.servlet;
