# make deploy ENV=dev: small, cheap, quick to tear down.
environment             = "dev"
stream_mode             = "ON_DEMAND"
firehose_buffer_seconds = 60
writer_max_concurrency  = 5
log_retention_days      = 7
staging_expiration_days = 3
force_destroy           = true
