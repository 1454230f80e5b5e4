set output 'Timing2.svg
set terminal svg
set grid
set title "Driver end date"
set xlabel "audio cycles"
set ylabel "usec"
plot  "/tmp/pwrunT8/test_melody_in_gives_midi_and_0/profiler.log" using 2 title "Driver end date" with lines 
unset output
