/* pin_prompt.c - see pin_prompt.h. Part of the POSIX driver program. */
#define _POSIX_C_SOURCE 200809L

#include "pin_prompt.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "sat_wipe.h"

static void chomp(char *s)
{
    s[strcspn(s, "\r\n")] = '\0';
}

void pin_wipe(char pin[PIN_BUF_BYTES])
{
    sat_wipe(pin, PIN_BUF_BYTES);
}

int pin_from_file(const char *path, char pin[PIN_BUF_BYTES], char *why, size_t why_len)
{
    FILE *fp = fopen(path, "re");
    int ret = -1;
    if (!fp) {
        snprintf(why, why_len, "cannot read PIN file '%s': %s", path, strerror(errno));
        return -1;
    }
    if (!fgets(pin, PIN_BUF_BYTES, fp))
        snprintf(why, why_len, "PIN file '%s' is empty", path);
    else if (!strchr(pin, '\n') && !feof(fp))
        snprintf(why, why_len, "PIN file '%s': first line is too long", path);
    else
        ret = 0;
    fclose(fp);
    if (ret == 0)
        chomp(pin);
    else
        pin_wipe(pin);
    return ret;
}

int pin_from_tty(const char *prompt, char pin[PIN_BUF_BYTES], char *why, size_t why_len)
{
    FILE *tty = fopen("/dev/tty", "r+e");
    struct termios old;
    struct termios quiet;
    int ret = -1;
    if (!tty) {
        snprintf(why, why_len, "no terminal to ask for the PIN: use --pin-file FILE");
        return -1;
    }
    fputs(prompt, tty);
    fflush(tty);
    if (tcgetattr(fileno(tty), &old) == 0) {
        quiet = old;
        quiet.c_lflag &= (tcflag_t)~ECHO;
        tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
    }
    if (fgets(pin, PIN_BUF_BYTES, tty)) {
        chomp(pin);
        ret = 0;
    } else {
        snprintf(why, why_len, "no PIN entered");
        pin_wipe(pin);
    }
    tcsetattr(fileno(tty), TCSAFLUSH, &old);
    fputs("\n", tty);
    fclose(tty);
    return ret;
}
