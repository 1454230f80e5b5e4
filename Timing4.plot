set output 'Timing4.svg
set terminal svg
set multiplot
set grid
set title "Clients scheduling latency"
set xlabel "audio cycles"
set ylabel "usec"
plot "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 9 title "pwtest/18" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 17 title "pwtest-graph/22" with lines, "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 25 title "pw-player/24" with lines
unset multiplot
unset output
