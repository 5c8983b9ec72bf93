/* geo.h - distances on the earth for the geo constraint: points as unit
 * vectors, so the per-node filter compares squared chord lengths (a few
 * multiplications) instead of running trigonometry for every node, and the
 * haversine formula where a distance in km is shown or ranked. */
#ifndef CS_GEO_H
#define CS_GEO_H

typedef struct geo_point {
    double x, y, z;
} geo_point;

/* lat in -90..90, lon in -180..180 (degrees). Every longitude of a pole,
 * and -180 / 180, give the same point, so equal places compare equal. */
geo_point geo_unit(double lat, double lon);

/* Great-circle distance in km (haversine, radius CS_EARTH_RADIUS_KM). */
double geo_haversine_km(double lat1, double lon1, double lat2, double lon2);

/* The great-circle distance in km of two unit points whose squared chord
 * is chord2: 2R asin(chord / 2), the haversine formula written with the
 * chord (hav(theta) = chord^2 / 4). */
double geo_chord_km(double chord2);

/* Squared chord between two unit points. */
double geo_chord2(const geo_point *a, const geo_point *b);

/* The largest squared chord of two points at most km apart on the
 * surface: chord2 <= geo_chord2_max(km) exactly when the great-circle
 * distance is <= km (0 keeps only the same place). */
double geo_chord2_max(double km);

#endif
