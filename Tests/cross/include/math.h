/* Stand-in for the target's <math.h> (see Tests/cross/README.md). */
#pragma once
#define INFINITY (__builtin_inff())
#define NAN (__builtin_nanf(""))
#define HUGE_VALF (__builtin_huge_valf())
#define isnan(x) __builtin_isnan(x)
#define isinf(x) __builtin_isinf(x)
#define isfinite(x) __builtin_isfinite(x)
float expf(float x);
double exp(double x);
float sqrtf(float x);
double sqrt(double x);
float fabsf(float x);
double fabs(double x);
float roundf(float x);
float nearbyintf(float x);
float logf(float x);
float tanhf(float x);
float floorf(float x);
float powf(float x, float y);
