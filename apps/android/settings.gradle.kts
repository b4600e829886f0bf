// ondevice sample app. protocol-core and frontend are plain JVM modules (also compiled by kotlinc 1.3 in CI).
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "ondevice-android"
include(":protocol-core", ":frontend", ":jvm-agent", ":app")
