# Over-the-air updates (docs/ota.md): the bundle's ustar stream (tar) and signed
# manifest (manifest, sig), the installer into the inactive slot (install), its delivery
# over MQTT (fetch), and the slots' boot state (slots). Loaded for an update or a trial
# boot's verdict and dropped after it; the LwM2M codes it reports are lamp.numbers'.


class OtaError(Exception):
    # .result: the LwM2M Update Result code (lamp.numbers); .detail: one line naming what
    # and where.
    def __init__(self, result, detail):
        super().__init__(detail)
        self.result = result
        self.detail = detail
