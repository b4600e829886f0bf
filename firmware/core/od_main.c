/* od_main.c: the firmware's main loop, the same on every port: bring up the board, announce BOOT, serve frames
 * (and EEMBC / MLPerf Tiny command lines, od_eembc.h). */
#include "od_agent.h"
#include "od_eembc.h"
#include "od_port.h"

int main(void)
{
    port_init();
    od_agent_init();
    for (;;) {
        int c = port_getc();
        if (c >= 0) od_eembc_feed((uint8_t)c, od_agent_feed); /* EEMBC command lines, else frames */
    }
}
