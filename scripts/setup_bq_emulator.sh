#!/usr/bin/env bash
# Placeholder until the BigQuery emulator set-up lands.
echo "bq-emulator: not set up yet"
