# Runs first on every reset. Kept minimal on purpose: nothing here may fail, so that
# main.py always gets to light the lamp. (Slot selection for OTA joins here later.)
import gc

gc.collect()
