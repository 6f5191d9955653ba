//! /proc/net/snmp, netstat, snmp6, sockstat readers (in progress).
