(import 'netstat_exporter.libsonnet')
