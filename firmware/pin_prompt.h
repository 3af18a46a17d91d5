/*
 * pin_prompt.h - getting a PIN into the `satchel` program without it ever
 * appearing in argv (visible to every user through /proc) or on screen.
 */
#ifndef SATCHEL_PIN_PROMPT_H
#define SATCHEL_PIN_PROMPT_H

#include <stddef.h>

#include "sat_err.h"

#define PIN_BUF_BYTES 64

/* Reads the first line of path (without its line ending) into pin.
 * Returns 0, or -1 with a one-line reason in why. */
SAT_CHECK int pin_from_file(const char *path, char pin[PIN_BUF_BYTES], char *why, size_t why_len);

/* Asks on the controlling terminal with echo off. Returns 0, or -1 with a
 * one-line reason in why (no terminal, end of input). */
SAT_CHECK int pin_from_tty(const char *prompt, char pin[PIN_BUF_BYTES], char *why, size_t why_len);

/* Wipes a PIN buffer in a way the compiler may not remove. */
void pin_wipe(char pin[PIN_BUF_BYTES]);

#endif
