# Commands (docs/commands.md): the canonical form and its MAC (canon), the handler and its
# counter (handler), the arguments as a table (args), what a command does (control). All
# of it is loaded for one command and dropped after it: code a node runs a few times a day
# need not sit in its heap (lamp.net.link).
