//! /proc/net/dev and /sys/class/net readers (in progress).
