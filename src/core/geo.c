/* geo.c - see geo.h. */
#include "geo.h"

#include <math.h>

#include "cs_limits.h"

#define DEG (M_PI / 180.0)

geo_point geo_unit(double lat, double lon)
{
    if (lat >= 90.0 || lat <= -90.0)
        lon = 0.0; /* cos(90 deg) is not exactly 0 in floating point */
    if (lon <= -180.0)
        lon = 180.0;
    double phi = lat * DEG, lam = lon * DEG;
    geo_point p = {cos(phi) * cos(lam), cos(phi) * sin(lam), sin(phi)};
    if (lat >= 90.0 || lat <= -90.0)
        p = (geo_point){0.0, 0.0, lat > 0 ? 1.0 : -1.0};
    return p;
}

double geo_haversine_km(double lat1, double lon1, double lat2, double lon2)
{
    double sp = sin((lat2 - lat1) * DEG / 2.0);
    double sl = sin((lon2 - lon1) * DEG / 2.0);
    double a = sp * sp + cos(lat1 * DEG) * cos(lat2 * DEG) * sl * sl;
    if (a > 1.0)
        a = 1.0;
    return 2.0 * CS_EARTH_RADIUS_KM * asin(sqrt(a));
}

double geo_chord2(const geo_point *a, const geo_point *b)
{
    double dx = a->x - b->x, dy = a->y - b->y, dz = a->z - b->z;
    return dx * dx + dy * dy + dz * dz;
}

double geo_chord_km(double chord2)
{
    double h = sqrt(chord2) / 2.0;
    return 2.0 * CS_EARTH_RADIUS_KM * asin(h > 1.0 ? 1.0 : h);
}

double geo_chord2_max(double km)
{
    double theta = km / CS_EARTH_RADIUS_KM;
    if (theta >= M_PI)
        return 5.0; /* the whole sphere: no chord is longer than 2 */
    double c = 2.0 * sin(theta / 2.0);
    /* A hair of slack so a node exactly at the threshold is not lost to
     * rounding; 0 stays 0, so a zero threshold keeps only the same place. */
    return c * c * (1.0 + 1e-12);
}
