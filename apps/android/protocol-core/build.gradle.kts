// Pure Kotlin/JVM: no Android imports, so CI compiles and tests it with kotlinc on a plain JVM.
plugins {
    id("org.jetbrains.kotlin.jvm")
}

kotlin {
    jvmToolchain(17)
    compilerOptions {
        // Keep the sources buildable by Debian's kotlinc 1.3 (the CI check).
        languageVersion.set(org.jetbrains.kotlin.gradle.dsl.KotlinVersion.KOTLIN_1_9)
    }
}
