# Sunrise, sunset and civil dawn/dusk for the schedule's sun-relative steps.
#
# The equations are those of the NOAA Solar Calculator spreadsheet
# (gml.noaa.gov/grad/solcalc/calcdetails.html, NOAA_Solar_Calculations_day.xls), which
# takes them from Meeus, "Astronomical Algorithms" (2nd ed.): ch. 25 for the sun's
# position, ch. 22 for the obliquity, ch. 28 for the equation of time. Pure math on the
# integers and floats we are given: no clock, no system date, so CPython (the controller's
# schedule preview) and MicroPython compute the same instants.
#
# Floats are single precision on the ESP32 port: time is counted in days from J2000.0
# (a few thousand) rather than as a Julian Day (2.46 million, where a float32 step is
# six hours), and nothing is accumulated over many steps.
import math

NORMAL = "normal"
POLAR_DAY = "polar_day"  # the sun's centre stays above the elevation all day
POLAR_NIGHT = "polar_night"  # ... and stays below it

_RAD = math.pi / 180
_DEG = 180 / math.pi
_ITER = 5  # a rise or set converges in 2-3 rounds; polar edge days may take 4


def _days(y, m, d):
    # Days from 2000-01-01 (Julian Day 2451544.5) to y-m-d in the proleptic Gregorian
    # calendar (H. Hinnant, "chrono-compatible low-level date algorithms",
    # days_from_civil), all in integers so that float32 loses nothing here.
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 730425


def _month_days(y, m):
    if m == 2:
        return 29 if (y % 4 == 0 and y % 100 != 0) or y % 400 == 0 else 28
    return 30 if m in (4, 6, 9, 11) else 31


def _event(n, sinlat, coslat, lon, sinh0, rising):
    # Minutes after 00:00 UTC of day n (from 2000-01-01) when the sun's centre crosses
    # the elevation whose sine is sinh0, or POLAR_NIGHT / POLAR_DAY when it does not.
    # The spreadsheet evaluates the sun once, at the local time given in its input; we
    # start at 06:00 / 18:00 local mean time and re-evaluate at each estimate until it
    # moves by less than 0.05 min, so the declination is the one at the event itself.
    noon = 720 - 4 * lon
    t = noon - 360 if rising else noon + 360
    status = NORMAL
    for _ in range(_ITER):
        # Julian Century (NOAA column "Julian Century"), from J2000.0 = JD 2451545.0.
        jc = (n - 0.5 + t / 1440) / 36525
        # Geometric mean longitude and anomaly, eccentricity (Meeus 25.2, 25.3, 25.4).
        l0 = ((280.46646 + jc * (36000.76983 + jc * 0.0003032)) % 360) * _RAD
        m = (357.52911 + jc * (35999.05029 - 0.0001537 * jc)) * _RAD
        e = 0.016708634 - jc * (0.000042037 + 0.0000001267 * jc)
        # Apparent longitude: true longitude (mean + equation of centre), corrected for
        # nutation and aberration with omega, the Moon's ascending node (Meeus 25.8).
        om = (125.04 - 1934.136 * jc) * _RAD
        lam = (
            l0 * _DEG
            + math.sin(m) * (1.914602 - jc * (0.004817 + 0.000014 * jc))
            + math.sin(2 * m) * (0.019993 - 0.000101 * jc)
            + math.sin(3 * m) * 0.000289
            - 0.00569
            - 0.00478 * math.sin(om)
        ) * _RAD
        # Mean obliquity of the ecliptic (Meeus 22.2) and its nutation correction.
        eps = (
            23
            + (26 + (21.448 - jc * (46.815 + jc * (0.00059 - jc * 0.001813))) / 60) / 60
            + 0.00256 * math.cos(om)
        ) * _RAD
        sindec = math.sin(eps) * math.sin(lam)  # declination (Meeus 25.7)
        # Equation of time in minutes (Meeus 28.3, "var y" = tan^2(eps / 2)).
        v = math.tan(eps / 2)
        v *= v
        eqt = (
            4
            * _DEG
            * (
                v * math.sin(2 * l0)
                - 2 * e * math.sin(m)
                + 4 * e * v * math.sin(m) * math.cos(2 * l0)
                - 0.5 * v * v * math.sin(4 * l0)
                - 1.25 * e * e * math.sin(2 * m)
            )
        )
        # Hour angle of the crossing (NOAA "HA Sunrise"): cos H = num / den. Outside
        # [-1, 1] there is no crossing; decided without dividing, so lat = +-90 is fine.
        num = sinh0 - sinlat * sindec
        den = coslat * math.sqrt(1 - sindec * sindec)
        if num >= den:
            status, h = POLAR_NIGHT, 0.0  # clamp: look again at solar noon
        elif num <= -den:
            status, h = POLAR_DAY, 180.0  # clamp: look again at solar midnight
        else:
            status, h = NORMAL, math.acos(num / den) * _DEG
        # NOAA "Sunrise/Sunset Time": solar noon minus / plus 4 min per degree of H.
        prev = t
        t = noon - eqt - 4 * h if rising else noon - eqt + 4 * h
        if -0.05 < t - prev < 0.05:
            break
    return t if status is NORMAL else status


def sun(y, m, d, lat, lon, elevation=-0.833):
    # (status, rise, set) for the UTC date y-m-d: minutes after its 00:00 UTC when the
    # sun's centre crosses `elevation` degrees going up and going down (< 0 or >= 1440
    # far from Greenwich); rise and set are None unless status is NORMAL. -0.833 is the
    # NOAA sunrise: 16' of solar radius plus 34' of refraction at the horizon.
    if not -90 <= lat <= 90:
        raise ValueError("lat %r outside -90..90" % (lat,))
    if not -180 <= lon <= 180:
        raise ValueError("lon %r outside -180..180" % (lon,))
    if not 1 <= m <= 12:
        raise ValueError("month %r outside 1..12" % (m,))
    if not 1 <= d <= _month_days(y, m):
        raise ValueError("day %r outside 1..%d" % (d, _month_days(y, m)))
    if not -90 <= elevation <= 90:
        raise ValueError("elevation %r outside -90..90" % (elevation,))
    n = _days(y, m, d)
    sinlat = math.sin(lat * _RAD)
    coslat = math.cos(lat * _RAD)
    sinh0 = math.sin(elevation * _RAD)
    rise = _event(n, sinlat, coslat, lon, sinh0, True)
    if rise is POLAR_DAY or rise is POLAR_NIGHT:
        return rise, None, None
    set_ = _event(n, sinlat, coslat, lon, sinh0, False)
    if set_ is POLAR_DAY or set_ is POLAR_NIGHT:
        return set_, None, None
    return NORMAL, rise, set_


def sunrise_sunset(y, m, d, lat, lon):
    # (status, sunrise, sunset): the upper limb on the horizon, refraction included.
    return sun(y, m, d, lat, lon, -0.833)


def civil_twilight(y, m, d, lat, lon):
    # (status, dawn, dusk): the centre 6 degrees below the horizon, where street lighting
    # customarily switches (ESPHome's `sun` "civil"); POLAR_NIGHT here means no dusk.
    return sun(y, m, d, lat, lon, -6.0)
