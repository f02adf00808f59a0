# Over-the-air updates (docs/ota.md): the bundle's ustar stream (tar) and signed
# manifest (manifest, sig), the installer into the inactive slot (install), its delivery
# over MQTT (fetch), and the slots' boot state (slots). Loaded for an update or a trial
# boot's verdict and dropped after it. The LwM2M codes only it reports live here, so they
# cost a connected node nothing between updates (IDLE, R_SUCCESS, R_FAILED: lamp.numbers).


# LwM2M Object 5 (Firmware Update), resource 3 State ...
DOWNLOADING = 1
DOWNLOADED = 2
UPDATING = 3
# ... and resource 5 Update Result.
R_INITIAL = 0
R_NO_FLASH = 2
R_NO_RAM = 3
R_CONN_LOST = 4  # the transport's to report (lamp.ota.fetch)
R_INTEGRITY = 5  # signature, sha256, size, truncation
R_UNSUPPORTED = 6  # not a bundle, bad manifest, other board or key, downgrade
R_CANCELLED = 10
R_DEFERRED = 11  # the running slot is still on trial: confirm it first


class OtaError(Exception):
    # .result: the LwM2M Update Result code (lamp.numbers); .detail: one line naming what
    # and where.
    def __init__(self, result, detail):
        super().__init__(detail)
        self.result = result
        self.detail = detail
