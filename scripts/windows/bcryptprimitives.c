/* Test harness only, never shipped: Wine 8.0 has no bcryptprimitives.dll, which every Rust
 * >= 1.78 Windows binary imports for ProcessPrng. This stand-in forwards to BCryptGenRandom.
 * Built with mingw by setup-wine.sh into the scratch prefix's system32. */
#include <windows.h>
#include <bcrypt.h>

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
    while (len > 0) {
        ULONG n = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, n, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0) return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
