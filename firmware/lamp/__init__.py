# Lanterna lamp-post firmware. One module per capability; hardware only through `hal`,
# time only through `clock`.
VERSION = "0.1.0"
