# Entry point. On the pole MicroPython runs it after boot.py with no arguments (board.json
# and config.json from flash); on the unix port the arguments name the board and config.
import sys

from lamp import app

sys.exit(app.main(sys.argv[1:]))
