#!/bin/sh
# Lists the pages this image serves (minbase has no web server; the demo only builds).
ls -l /srv/www
